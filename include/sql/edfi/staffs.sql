-- Ed-Fi staffs: people with a school assignment (campus_edfi.staff_assignment) at a school in scope.
WITH assigned AS (
    SELECT a.personid, min(a.schoolid) AS schoolid
      FROM campus_edfi.staff_assignment a
     WHERE (%(schools)s::bigint[] IS NULL OR a.schoolid = ANY(%(schools)s::bigint[]))
       AND (%(person_ids)s::bigint[] IS NULL OR a.personid = ANY(%(person_ids)s::bigint[]))
     GROUP BY a.personid
)
SELECT p.personid::text AS source_id, a.schoolid AS school_id, p.personid AS person_id,
       NULL::bigint AS course_id, NULL::bigint AS section_id,
       CASE WHEN nullif(btrim(x.edfiid), '') IS NULL THEN 'no_edfi_id' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'staffUniqueId', x.edfiid,
           'firstName', p.firstname,
           'middleName', p.middlename,
           'lastSurname', p.lastname,
           'birthDate', p.birthdate
       )) AS doc
  FROM assigned a
  JOIN campus.personidentity p ON p.personid = a.personid
  LEFT JOIN campus_edfi.person_edfi_id x ON x.personid = p.personid
 ORDER BY p.personid
