-- Ed-Fi staff section associations: each section's teacher of record.
SELECT s.sectionid::text AS source_id, c.schoolid AS school_id, s.teacherpersonid AS person_id,
       co.courseid AS course_id, s.sectionid AS section_id,
       CASE WHEN nullif(btrim(x.edfiid), '') IS NULL THEN 'no_edfi_id' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'staffReference', jsonb_build_object('staffUniqueId', x.edfiid),
           'sectionReference', jsonb_build_object('localCourseCode', co.number, 'schoolId', c.schoolid,
                                                  'schoolYear', c.endyear, 'sessionName', t.name,
                                                  'sectionIdentifier', s.number),
           'beginDate', coalesce(s.startdate, t.startdate),
           'classroomPositionDescriptor', %(ns)s || '/ClassroomPositionDescriptor#Teacher of Record'
       )) AS doc
  FROM campus_edfi.section s
  JOIN campus_edfi.course co ON co.courseid = s.courseid
  JOIN campus_edfi.term t ON t.termid = s.termid
  JOIN campus.calendar c ON c.calendarid = co.calendarid
  LEFT JOIN campus_edfi.person_edfi_id x ON x.personid = s.teacherpersonid
 WHERE s.teacherpersonid IS NOT NULL
   AND c.endyear = %(end_year)s AND NOT coalesce(c.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
   AND (%(person_ids)s::bigint[] IS NULL OR s.teacherpersonid = ANY(%(person_ids)s::bigint[]))
   AND (%(course_ids)s::bigint[] IS NULL OR co.courseid = ANY(%(course_ids)s::bigint[]))
   AND (%(section_ids)s::bigint[] IS NULL OR s.sectionid = ANY(%(section_ids)s::bigint[]))
 ORDER BY s.sectionid
