-- Ed-Fi sessions from the terms of each school's calendar of the school year (campus_edfi.term).
SELECT t.termid::text AS source_id, c.schoolid AS school_id, NULL::bigint AS person_id,
       NULL::bigint AS course_id, NULL::bigint AS section_id,
       CASE WHEN %(maps)s::jsonb -> 'TermDescriptor' ->> t.termcode IS NULL THEN 'unmapped_descriptor' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'schoolReference', jsonb_build_object('schoolId', c.schoolid),
           'schoolYearTypeReference', jsonb_build_object('schoolYear', c.endyear),
           'sessionName', t.name,
           'beginDate', t.startdate,
           'endDate', t.enddate,
           'termDescriptor', %(ns)s || '/TermDescriptor#' || (%(maps)s::jsonb -> 'TermDescriptor' ->> t.termcode),
           'totalInstructionalDays', t.instructionaldays
       )) AS doc
  FROM campus_edfi.term t
  JOIN campus.calendar c ON c.calendarid = t.calendarid
 WHERE c.endyear = %(end_year)s AND NOT coalesce(c.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
 ORDER BY t.termid
