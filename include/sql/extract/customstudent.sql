-- CustomStudent: District-defined custom student fields tied to an enrollment.
-- Every row of the district; the state accepts them all.
SELECT customStudentID,
       enrollmentID,
       personID,
       attributeCode,
       value,
       NULL::text AS reject_reason
  FROM campus.customstudent
