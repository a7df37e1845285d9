-- Graduation: Graduation date, diploma type and program per student enrollment.
-- Every row of the district; the state accepts them all.
SELECT graduationID,
       enrollmentID,
       personID,
       diplomaType,
       diplomaDate,
       NULL::text AS reject_reason
  FROM campus.graduation
