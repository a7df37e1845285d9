-- PlanProgressReport: Progress reports written against a plan.
-- Every row of the district; the state accepts them all.
SELECT progressReportID,
       planID,
       personID,
       reportDate,
       progress,
       NULL::text AS reject_reason
  FROM campus.planprogressreport
