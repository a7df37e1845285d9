-- TestScore: Campus's six "Test Scores Batch Sync Requirements"; a score that breaks one is
-- refused under that requirement's reason (checked in this order):
--   1 test_no_state_code    the test has neither a state nor a national code
--   2 test_not_published    the test is not published from the State Edition (published = 1)
--   3 score_undated         a root-level score without a date on a test without an end year
--   4 out_of_scope_year     neither the score date nor the test end year is in the scope year
--   5 test_district_locked  the test is district-locked (editNotAvailable)
--   6 student_not_enrolled  the student has no active enrollment in the sending district
-- %(scope_start)s / %(scope_end)s are the requested school year (July 1 .. June 30);
-- %(end_year)s is its end year.
SELECT ts.scoreID, ts.testID, ts.personID, ts.parentScoreID, ts.date, ts.scaleScore, ts.result,
       CASE
         WHEN t.testID IS NULL THEN NULL  -- no such test: the state refuses it as parent_missing:Test
         WHEN coalesce(t.stateCode, '') = '' AND coalesce(t.nationalCode, '') = ''
              THEN 'test_no_state_code'
         WHEN NOT coalesce(t.published, false) THEN 'test_not_published'
         WHEN ts.parentScoreID IS NULL AND ts.date IS NULL AND t.endYear IS NULL
              THEN 'score_undated'
         WHEN NOT (ts.date BETWEEN %(scope_start)s AND %(scope_end)s
                   OR t.endYear = %(end_year)s)
              THEN 'out_of_scope_year'
         WHEN coalesce(t.editNotAvailable, false) THEN 'test_district_locked'
         WHEN NOT EXISTS (
                SELECT 1 FROM campus.enrollment e
                 WHERE e.personID = ts.personID
                   AND e.endYear = %(end_year)s
                   AND NOT coalesce(e.stateExclude, false)
                   AND e.startDate <= %(scope_end)s
                   AND (e.endDate IS NULL OR e.endDate >= %(scope_start)s))
              THEN 'student_not_enrolled'
       END AS reject_reason
  FROM campus.testscore ts
  LEFT JOIN campus.test t ON t.testID = ts.testID
