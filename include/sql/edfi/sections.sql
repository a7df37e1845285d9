-- Ed-Fi sections from campus_edfi.section (their course offering: course and term).
SELECT s.sectionid::text AS source_id, c.schoolid AS school_id, NULL::bigint AS person_id,
       co.courseid AS course_id, s.sectionid AS section_id, NULL::text AS problem,
       jsonb_build_object(
           'sectionIdentifier', s.number,
           'courseOfferingReference', jsonb_build_object('localCourseCode', co.number, 'schoolId', c.schoolid,
                                                         'schoolYear', c.endyear, 'sessionName', t.name),
           'sectionName', left(co.name || ' ' || s.number, 100)
       ) AS doc
  FROM campus_edfi.section s
  JOIN campus_edfi.course co ON co.courseid = s.courseid
  JOIN campus_edfi.term t ON t.termid = s.termid
  JOIN campus.calendar c ON c.calendarid = co.calendarid
 WHERE c.endyear = %(end_year)s AND NOT coalesce(c.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
   AND (%(course_ids)s::bigint[] IS NULL OR co.courseid = ANY(%(course_ids)s::bigint[]))
   AND (%(section_ids)s::bigint[] IS NULL OR s.sectionid = ANY(%(section_ids)s::bigint[]))
 ORDER BY s.sectionid
