-- EmploymentAssignment: A staff person's assignment to a school.
-- Every row of the district; the state accepts them all.
SELECT assignmentID,
       personID,
       schoolID,
       title,
       fte,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.employmentassignment
