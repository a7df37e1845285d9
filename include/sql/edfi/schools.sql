-- Ed-Fi schools from campus.school. Parameters (bound, never spliced): end_year, schools (bigint[]
-- or NULL: every school), person_ids, course_ids, section_ids (bigint[] or NULL), maps (jsonb:
-- include/edfi/descriptor_maps.yaml), ns (the descriptor namespace). Every extract returns
-- source_id, school_id, person_id, course_id, section_id, problem (NULL, or the reason the
-- document is not sent) and doc (the Ed-Fi document).
SELECT s.schoolid::text AS source_id, s.schoolid AS school_id, NULL::bigint AS person_id,
       NULL::bigint AS course_id, NULL::bigint AS section_id,
       CASE WHEN %(maps)s::jsonb -> 'SchoolTypeCategory' -> s.type IS NULL THEN 'unmapped_descriptor' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'schoolId', s.schoolid,
           'nameOfInstitution', s.name,
           'shortNameOfInstitution', s.number,
           'educationOrganizationCategories', jsonb_build_array(jsonb_build_object(
               'educationOrganizationCategoryDescriptor', %(ns)s || '/EducationOrganizationCategoryDescriptor#School')),
           'gradeLevels', (SELECT jsonb_agg(jsonb_build_object('gradeLevelDescriptor', %(ns)s || '/GradeLevelDescriptor#' || g.value) ORDER BY g.ord)
                             FROM jsonb_array_elements_text(%(maps)s::jsonb -> 'SchoolTypeCategory' -> s.type) WITH ORDINALITY AS g(value, ord))
       )) AS doc
  FROM campus.school s
 WHERE NOT coalesce(s.stateexclude, false)
   AND (%(schools)s::bigint[] IS NULL OR s.schoolid = ANY(%(schools)s::bigint[]))
 ORDER BY s.schoolid
