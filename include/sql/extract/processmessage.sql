-- ProcessMessage: Process inbox messages about a person.
-- Every row of the district; the state accepts them all.
SELECT messageID,
       personID,
       messageType,
       createdDate,
       NULL::text AS reject_reason
  FROM campus.processmessage
