-- Ed-Fi students: people enrolled (state-accepted) in the school year at a school in scope.
-- A person without an Ed-Fi ID is not sent (problem no_edfi_id).
WITH enrolled AS (
    SELECT e.personid, min(c.schoolid) AS schoolid
      FROM campus.enrollment e
      JOIN campus.calendar c ON c.calendarid = e.calendarid
     WHERE e.endyear = %(end_year)s AND NOT coalesce(e.stateexclude, false) AND NOT coalesce(c.stateexclude, false)
       AND (%(schools)s::bigint[] IS NULL OR c.schoolid = ANY(%(schools)s::bigint[]))
       AND (%(person_ids)s::bigint[] IS NULL OR e.personid = ANY(%(person_ids)s::bigint[]))
     GROUP BY e.personid
)
SELECT p.personid::text AS source_id, en.schoolid AS school_id, p.personid AS person_id,
       NULL::bigint AS course_id, NULL::bigint AS section_id,
       CASE WHEN nullif(btrim(x.edfiid), '') IS NULL THEN 'no_edfi_id' END AS problem,
       jsonb_strip_nulls(jsonb_build_object(
           'studentUniqueId', x.edfiid,
           'firstName', p.firstname,
           'middleName', p.middlename,
           'lastSurname', p.lastname,
           'birthDate', p.birthdate,
           'birthSexDescriptor', %(ns)s || '/SexDescriptor#' || (%(maps)s::jsonb -> 'SexDescriptor' ->> p.gender)
       )) AS doc
  FROM enrolled en
  JOIN campus.personidentity p ON p.personid = en.personid
  LEFT JOIN campus_edfi.person_edfi_id x ON x.personid = p.personid
 ORDER BY p.personid
