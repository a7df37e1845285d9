-- Calendar: a calendar is refused when it, or its school, is state-excluded (Campus's resync tool:
-- "state-excluded calendars" count as errors).
SELECT c.calendarID, c.schoolID, c.endYear, c.name, c.startDate, c.endDate, c.stateExclude,
       CASE WHEN c.stateExclude THEN 'state_excluded_calendar'
            WHEN s.stateExclude THEN 'state_excluded_school' END AS reject_reason
  FROM campus.calendar c
  LEFT JOIN campus.school s ON s.schoolID = c.schoolID
