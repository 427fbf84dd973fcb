-- purpose: Staff with 3 or more justified complaints about them in the 6 months up to a
--   date (the demotion rule), with what the complaints were about.
-- formula: a complaint counts against the staff member it is about (subject_staff_id:
--   被投诉人员, not the handler who owns the ticket) once an investigation found it
--   justified (justified = true); complaints still undecided (justified null) are shown
--   apart and do not count. The window is the {months} calendar months before {as_of},
--   on local dates (as_of 2026-07-01, 6 months: from 1 January, local), by created_at.
--   customers, first and last complaint and categories (by their Chinese names) cover
--   the justified and the undecided complaints.
-- grain: one row per staff member at or over the threshold, most complaints first
-- lookahead: all
-- param: as_of date 2026-07-01 end of the window, exclusive
-- param: months int 6 window length in months
-- param: threshold int 3 fewest justified complaints to list
-- param: region text % region code (LIKE pattern; % for all)
WITH about AS (
    SELECT t.subject_staff_id, t.region, t.customer_id, t.created_at, t.justified,
           coalesce(nullif(k.name_zh, ''), t.category) AS category
    FROM tickets t
    LEFT JOIN categories k ON k.category = t.category
    WHERE t.kind = 'complaint'
      AND t.subject_staff_id IS NOT NULL
      AND t.justified IS NOT FALSE
      AND t.created_at >= local_midnight({{as_of}} - {{months:months}})
      AND t.created_at < {{as_of:utc}}
      AND t.region LIKE {{region}}
),
result AS (
    SELECT
        subject_staff_id AS staff_id,
        region,
        count(*) FILTER (WHERE justified) AS complaints,
        count(*) FILTER (WHERE justified IS NULL) AS undecided,
        count(DISTINCT customer_id) AS customers,
        min(local_date(created_at)) AS first_complaint,
        max(local_date(created_at)) AS last_complaint,
        array_to_string(array_agg(DISTINCT category ORDER BY category), ', ') AS categories
    FROM about
    GROUP BY subject_staff_id, region
    HAVING count(*) FILTER (WHERE justified) >= {{threshold}}
)
SELECT result.*,
       coalesce(nullif(n_staff.name_zh, ''), result.staff_id) AS staff_name,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN staff n_staff ON n_staff.staff_id = result.staff_id
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.complaints DESC, result.staff_id
