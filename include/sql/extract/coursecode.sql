-- CourseCode: State course codes the district's courses map to.
-- Every row of the district; the state accepts them all.
SELECT code,
       name,
       subjectArea,
       NULL::text AS reject_reason
  FROM campus.coursecode
