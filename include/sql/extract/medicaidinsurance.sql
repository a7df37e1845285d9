-- MedicaidInsurance: Medicaid insurance coverage.
-- Every row of the district; the state accepts them all.
SELECT insuranceID,
       personID,
       medicaidNumber,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.medicaidinsurance
