-- ScheduleStructure: refused with its calendar when the calendar is state-excluded.
SELECT ss.structureID, ss.calendarID, ss.endYear, ss.name, ss.active,
       CASE WHEN c.stateExclude THEN 'state_excluded_calendar' END AS reject_reason
  FROM campus.schedulestructure ss
  LEFT JOIN campus.calendar c ON c.calendarID = ss.calendarID
