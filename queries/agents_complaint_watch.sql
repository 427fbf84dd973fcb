-- purpose: Staff with 3 or more complaints in the 6 months up to a date (the demotion
--   rule), with what the complaints were about.
-- formula: a complaint counts against the staff member who owns it (owner_id); the
--   window is the {months} months before {as_of} (local days); justified complaints
--   are counted apart.
-- grain: one row per staff member at or over the threshold, most complaints first
-- param: as_of date 2026-07-01 end of the window, exclusive
-- param: months int 6 window length in months
-- param: threshold int 3 fewest complaints to list
-- param: region text % region code (LIKE pattern; % for all)
SELECT
    owner_id,
    region,
    count(*) AS complaints,
    count(*) FILTER (WHERE justified) AS justified,
    count(DISTINCT customer_id) AS customers,
    min(local_date(created_at)) AS first_complaint,
    max(local_date(created_at)) AS last_complaint,
    array_to_string(array_agg(DISTINCT category ORDER BY category), ', ') AS categories
FROM tickets
WHERE kind = 'complaint'
  AND owner_id IS NOT NULL
  AND created_at >= {{as_of:utc}} - {{months:months}}
  AND created_at < {{as_of:utc}}
  AND region LIKE {{region}}
GROUP BY owner_id, region
HAVING count(*) >= {{threshold}}
ORDER BY complaints DESC, owner_id
