-- StructureGradeLevel: state-excluded grade levels (and grades of excluded calendars) are refused.
SELECT g.gradeLevelID, g.structureID, g.calendarID, g.endYear, g.name, g.stateGrade, g.stateExclude,
       CASE WHEN g.stateExclude THEN 'state_excluded_grade_level'
            WHEN c.stateExclude THEN 'state_excluded_calendar' END AS reject_reason
  FROM campus.structuregradelevel g
  LEFT JOIN campus.calendar c ON c.calendarID = g.calendarID
