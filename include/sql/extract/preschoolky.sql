-- PreSchoolKY: Kentucky preschool program data.
-- Every row of the district; the state accepts them all.
SELECT preschoolID,
       enrollmentID,
       personID,
       programType,
       NULL::text AS reject_reason
  FROM campus.preschoolky
