-- Enrollment: Campus's resync tool counts state-excluded enrollments, grade levels and calendars as errors.
-- The grade level is the structure's grade whose name is the enrollment's grade.
SELECT e.enrollmentID, e.personID, e.calendarID, e.structureID, e.endYear, e.grade,
       e.serviceType, e.startDate, e.startStatus, e.endDate, e.endStatus, e.stateExclude,
       CASE WHEN e.stateExclude THEN 'state_excluded_enrollment'
            WHEN g.stateExclude THEN 'state_excluded_grade_level'
            WHEN c.stateExclude THEN 'state_excluded_calendar' END AS reject_reason
  FROM campus.enrollment e
  LEFT JOIN campus.calendar c ON c.calendarID = e.calendarID
  LEFT JOIN campus.structuregradelevel g
         ON g.structureID = e.structureID AND g.name = e.grade
