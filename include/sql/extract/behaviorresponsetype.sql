-- BehaviorResponseType: Behavior response types a calendar offers.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT responseTypeID,
       calendarID,
       endYear,
       code,
       name,
       stateCode,
       NULL::text AS reject_reason
  FROM campus.behaviorresponsetype
