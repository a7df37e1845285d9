-- Ed-Fi course offerings: each course in each term that has a section of it.
SELECT DISTINCT ON (co.courseid, t.termid)
       co.courseid::text || ':' || t.termid::text AS source_id, c.schoolid AS school_id, NULL::bigint AS person_id,
       co.courseid AS course_id, NULL::bigint AS section_id, NULL::text AS problem,
       jsonb_build_object(
           'localCourseCode', co.number,
           'schoolReference', jsonb_build_object('schoolId', c.schoolid),
           'sessionReference', jsonb_build_object('schoolId', c.schoolid, 'schoolYear', c.endyear, 'sessionName', t.name),
           'courseReference', jsonb_build_object('courseCode', co.number, 'educationOrganizationId', c.schoolid),
           'localCourseTitle', left(co.name, 60)
       ) AS doc
  FROM campus_edfi.section s
  JOIN campus_edfi.course co ON co.courseid = s.courseid
  JOIN campus_edfi.term t ON t.termid = s.termid
  JOIN campus.calendar c ON c.calendarid = co.calendarid
 WHERE c.endyear = %(end_year)s AND NOT coalesce(c.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
   AND (%(course_ids)s::bigint[] IS NULL OR co.courseid = ANY(%(course_ids)s::bigint[]))
 ORDER BY co.courseid, t.termid
