-- purpose: Branches over the complaint limit in a half year (more than 25; 50 in a
--   year), broken down by channel x category as the rules require.
-- formula: complaints = tickets of kind 'complaint' created in the half year (1 Jan –
--   30 Jun or 1 Jul – 31 Dec, local days) containing {date}; a branch is listed when
--   its complaints exceed {limit}; each row is one channel x category of such a branch,
--   with the branch's total beside it.
-- grain: one row per listed branch x channel x category
-- param: date date 2026-06-30 any day of the half year
-- param: limit int 25 complaints a branch may have in the half year
-- param: region text % region code (LIKE pattern; % for all)
WITH half AS (
    SELECT
        CAST(CASE WHEN date_part('month', {{date}}) <= 6
             THEN date_trunc('year', CAST({{date}} AS TIMESTAMP))
             ELSE date_trunc('year', CAST({{date}} AS TIMESTAMP)) + INTERVAL '6 months' END AS DATE) AS starts
),
c AS (
    SELECT t.region, t.branch_id, t.channel, t.category
    FROM tickets t CROSS JOIN half h
    WHERE t.kind = 'complaint'
      AND local_date(t.created_at) >= h.starts
      AND local_date(t.created_at) < CAST(CAST(h.starts AS TIMESTAMP) + INTERVAL '6 months' AS DATE)
      AND t.created_at >= {{date:utc}} - INTERVAL '7 months'
      AND t.created_at < {{date:utc}} + INTERVAL '7 months'
      AND t.region LIKE {{region}}
),
branches AS (
    SELECT branch_id, count(*) AS branch_complaints
    FROM c GROUP BY branch_id HAVING count(*) > {{limit}}
),
result AS (
    SELECT
        (SELECT starts FROM half) AS half_year_from,
        c.region,
        c.branch_id,
        b.branch_complaints,
        c.channel,
        c.category,
        count(*) AS complaints
    FROM c JOIN branches b ON b.branch_id = c.branch_id
    GROUP BY c.region, c.branch_id, b.branch_complaints, c.channel, c.category
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_branch.name_zh, ''), result.branch_id) AS branch_name,
       coalesce(nullif(n_category.name_zh, ''), result.category) AS category_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN org_units n_branch ON n_branch.unit_id = result.branch_id
LEFT JOIN categories n_category ON n_category.category = result.category
ORDER BY result.branch_complaints DESC, result.branch_id, result.complaints DESC, result.channel, result.category
