-- FRYSCStatusKY: Kentucky FRYSC status per enrollment.
-- Every row of the district; the state accepts them all.
SELECT fryscStatusID,
       enrollmentID,
       personID,
       status,
       NULL::text AS reject_reason
  FROM campus.fryscstatusky
