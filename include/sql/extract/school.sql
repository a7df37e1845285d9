-- School: schools of the district; a state-excluded school is refused.
SELECT schoolID, number, name, type, stateExclude,
       CASE WHEN stateExclude THEN 'state_excluded_school' END AS reject_reason
  FROM campus.school
