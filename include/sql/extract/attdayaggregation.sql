-- AttDayAggregation: Aggregated daily attendance per enrollment (BIE and Nevada); refreshed before it syncs.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT aggregationID,
       enrollmentID,
       personID,
       calendarID,
       endYear,
       date,
       minutesPresent,
       minutesAbsent,
       excuseID,
       NULL::text AS reject_reason
  FROM campus.attdayaggregation
