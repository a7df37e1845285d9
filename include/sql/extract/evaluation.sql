-- Evaluation: Evaluations attached to an enrollment.
-- Every row of the district; the state accepts them all.
SELECT evaluationID,
       enrollmentID,
       personID,
       evaluationType,
       evaluationDate,
       NULL::text AS reject_reason
  FROM campus.evaluation
