-- ReportingEntity: Reporting entity that groups schools for state reporting (not Montana since .1501).
-- Every row of the district; the state accepts them all.
SELECT reportingEntityID,
       number,
       name,
       NULL::text AS reject_reason
  FROM campus.reportingentity
