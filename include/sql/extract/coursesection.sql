-- CourseSection: A section of a course taught in a calendar.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT sectionID,
       calendarID,
       endYear,
       courseNumber,
       courseName,
       sectionNumber,
       stateCode,
       NULL::text AS reject_reason
  FROM campus.coursesection
