-- GiftedStatusKY: Kentucky gifted and talented status.
-- Every row of the district; the state accepts them all.
SELECT giftedID,
       personID,
       category,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.giftedstatusky
