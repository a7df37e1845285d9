-- Ed-Fi student section associations from the section rosters (campus_edfi.roster).
SELECT r.rosterid::text AS source_id, c.schoolid AS school_id, r.personid AS person_id,
       co.courseid AS course_id, s.sectionid AS section_id,
       CASE WHEN nullif(btrim(x.edfiid), '') IS NULL THEN 'no_edfi_id' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'studentReference', jsonb_build_object('studentUniqueId', x.edfiid),
           'sectionReference', jsonb_build_object('localCourseCode', co.number, 'schoolId', c.schoolid,
                                                  'schoolYear', c.endyear, 'sessionName', t.name,
                                                  'sectionIdentifier', s.number),
           'beginDate', r.startdate,
           'endDate', r.enddate
       )) AS doc
  FROM campus_edfi.roster r
  JOIN campus_edfi.section s ON s.sectionid = r.sectionid
  JOIN campus_edfi.course co ON co.courseid = s.courseid
  JOIN campus_edfi.term t ON t.termid = s.termid
  JOIN campus.calendar c ON c.calendarid = co.calendarid
  LEFT JOIN campus_edfi.person_edfi_id x ON x.personid = r.personid
 WHERE c.endyear = %(end_year)s AND NOT coalesce(c.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
   AND (%(person_ids)s::bigint[] IS NULL OR r.personid = ANY(%(person_ids)s::bigint[]))
   AND (%(course_ids)s::bigint[] IS NULL OR co.courseid = ANY(%(course_ids)s::bigint[]))
   AND (%(section_ids)s::bigint[] IS NULL OR s.sectionid = ANY(%(section_ids)s::bigint[]))
 ORDER BY r.rosterid
