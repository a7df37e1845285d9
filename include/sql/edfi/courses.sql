-- Ed-Fi courses (at the school) from the courses of each school's calendar of the school year.
SELECT co.courseid::text AS source_id, c.schoolid AS school_id, NULL::bigint AS person_id,
       co.courseid AS course_id, NULL::bigint AS section_id,
       CASE WHEN co.subjectcode IS NOT NULL AND %(maps)s::jsonb -> 'AcademicSubjectDescriptor' ->> co.subjectcode IS NULL
            THEN 'unmapped_descriptor' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'courseCode', co.number,
           'educationOrganizationReference', jsonb_build_object('educationOrganizationId', c.schoolid),
           'courseTitle', left(co.name, 60),
           'numberOfParts', 1,
           'identificationCodes', jsonb_build_array(jsonb_build_object(
               'courseIdentificationSystemDescriptor', %(ns)s || '/CourseIdentificationSystemDescriptor#LEA course code',
               'identificationCode', co.number)),
           'academicSubjects', CASE WHEN co.subjectcode IS NOT NULL THEN jsonb_build_array(jsonb_build_object(
               'academicSubjectDescriptor', %(ns)s || '/AcademicSubjectDescriptor#'
                                            || (%(maps)s::jsonb -> 'AcademicSubjectDescriptor' ->> co.subjectcode))) END
       )) AS doc
  FROM campus_edfi.course co
  JOIN campus.calendar c ON c.calendarid = co.calendarid
 WHERE c.endyear = %(end_year)s AND NOT coalesce(c.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
   AND (%(course_ids)s::bigint[] IS NULL OR co.courseid = ANY(%(course_ids)s::bigint[]))
 ORDER BY co.courseid
