-- Ed-Fi student school associations: the state-accepted enrollments of the school year.
SELECT e.enrollmentid::text AS source_id, c.schoolid AS school_id, e.personid AS person_id,
       NULL::bigint AS course_id, NULL::bigint AS section_id,
       CASE WHEN nullif(btrim(x.edfiid), '') IS NULL THEN 'no_edfi_id'
            WHEN %(maps)s::jsonb -> 'GradeLevelDescriptor' ->> e.grade IS NULL THEN 'unmapped_descriptor' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'studentReference', jsonb_build_object('studentUniqueId', x.edfiid),
           'schoolReference', jsonb_build_object('schoolId', c.schoolid),
           'entryDate', e.startdate,
           'entryGradeLevelDescriptor', %(ns)s || '/GradeLevelDescriptor#' || (%(maps)s::jsonb -> 'GradeLevelDescriptor' ->> e.grade),
           'entryTypeDescriptor', %(ns)s || '/EntryTypeDescriptor#' || (%(maps)s::jsonb -> 'EntryTypeDescriptor' ->> e.startstatus),
           'exitWithdrawDate', e.enddate,
           'schoolYearTypeReference', jsonb_build_object('schoolYear', e.endyear)
       )) AS doc
  FROM campus.enrollment e
  JOIN campus.calendar c ON c.calendarid = e.calendarid
  JOIN campus.personidentity p ON p.personid = e.personid
  LEFT JOIN campus_edfi.person_edfi_id x ON x.personid = e.personid
 WHERE e.endyear = %(end_year)s AND NOT coalesce(e.stateexclude, false) AND NOT coalesce(c.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
   AND (%(person_ids)s::bigint[] IS NULL OR e.personid = ANY(%(person_ids)s::bigint[]))
 ORDER BY e.enrollmentid
