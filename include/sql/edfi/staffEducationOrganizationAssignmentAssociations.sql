-- Ed-Fi staff assignments to a school (education organization) from campus_edfi.staff_assignment.
SELECT a.assignmentid::text AS source_id, a.schoolid AS school_id, a.personid AS person_id,
       NULL::bigint AS course_id, NULL::bigint AS section_id,
       CASE WHEN nullif(btrim(x.edfiid), '') IS NULL THEN 'no_edfi_id'
            WHEN %(maps)s::jsonb -> 'StaffClassificationDescriptor' ->> a.classificationcode IS NULL THEN 'unmapped_descriptor' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'staffReference', jsonb_build_object('staffUniqueId', x.edfiid),
           'educationOrganizationReference', jsonb_build_object('educationOrganizationId', a.schoolid),
           'staffClassificationDescriptor', %(ns)s || '/StaffClassificationDescriptor#'
                                            || (%(maps)s::jsonb -> 'StaffClassificationDescriptor' ->> a.classificationcode),
           'beginDate', a.startdate,
           'endDate', a.enddate
       )) AS doc
  FROM campus_edfi.staff_assignment a
  JOIN campus.personidentity p ON p.personid = a.personid
  LEFT JOIN campus_edfi.person_edfi_id x ON x.personid = a.personid
 WHERE (%(schools)s::bigint[] IS NULL OR a.schoolid = ANY(%(schools)s::bigint[]))
   AND (%(person_ids)s::bigint[] IS NULL OR a.personid = ANY(%(person_ids)s::bigint[]))
 ORDER BY a.assignmentid
