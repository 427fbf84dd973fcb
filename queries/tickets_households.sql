-- purpose: Tickets counted as items (条) and as households (户), and how many were
--   closed: the documents' 「受理报修1952条，涉及1721户，已办结1741条（89.2%）」, rolled
--   up along the organisation (all, region, city, branch).
-- formula: items = tickets of kind {kind} (a LIKE pattern) created in the range (local
--   days); households = distinct customer_id among them (a ticket without a customer is
--   an item but no household), each customer once however many units it spans; closed =
--   items with status 'closed' and closed_at before {to} (rejected 不予受理 and withdrawn
--   撤诉 are not closures, and a closure after the range does not count); closure rate =
--   closed / items. Cities are the branches' parent units of level 'city' in org_units.
-- grain: one row for all regions (level 'all'), one per region, one per city holding
--   branches with tickets, one per branch; name is the unit's Chinese name (org_units;
--   the headquarters' for 'all'), its code where it has none
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
-- param: kind text work_order ticket kind (LIKE pattern: work_order, complaint, %)
WITH t AS (
    SELECT t.region, t.branch_id, p.unit_id AS city, t.customer_id,
           t.status = 'closed' AND t.closed_at < {{to:utc}} AS closed
    FROM tickets t
    LEFT JOIN org_units b ON b.unit_id = t.branch_id
    LEFT JOIN org_units p ON p.unit_id = b.parent_id AND p.level = 'city'
    WHERE t.kind LIKE {{kind}}
      AND t.created_at >= {{from:utc}}
      AND t.created_at < {{to:utc}}
      AND t.month BETWEEN {{from:month}} AND {{to:month}}
      AND t.region LIKE {{region}}
),
rolled AS (
    SELECT
        CASE
            WHEN grouping(region) = 1 THEN 'all'
            WHEN grouping(city) = 1 THEN 'region'
            WHEN grouping(branch_id) = 1 THEN 'city'
            ELSE 'branch'
        END AS level,
        region,
        city,
        branch_id,
        count(*) AS items,
        count(DISTINCT customer_id) AS households,
        count(*) FILTER (WHERE closed) AS closed
    FROM t
    GROUP BY GROUPING SETS ((), (region), (region, city), (region, city, branch_id))
)
SELECT
    r.level,
    CASE r.level
        WHEN 'all' THEN 'all'
        WHEN 'region' THEN r.region
        WHEN 'city' THEN r.city
        ELSE r.branch_id
    END AS unit_id,
    coalesce(
        o.name_zh,
        CASE WHEN r.level = 'all'
            THEN (SELECT min(name_zh) FROM org_units WHERE level = 'headquarters') END,
        CASE r.level WHEN 'all' THEN 'all' WHEN 'region' THEN r.region
            WHEN 'city' THEN r.city ELSE r.branch_id END
    ) AS name,
    r.region,
    r.items,
    r.households,
    r.closed,
    CAST(r.closed AS DOUBLE) / r.items AS closure_rate
FROM rolled r
LEFT JOIN org_units o ON o.unit_id = CASE r.level
        WHEN 'region' THEN r.region
        WHEN 'city' THEN r.city
        WHEN 'branch' THEN r.branch_id
    END
-- A branch directly under its region has no city; tickets without a branch have none.
WHERE NOT (r.level = 'city' AND r.city IS NULL)
  AND NOT (r.level = 'branch' AND r.branch_id IS NULL)
ORDER BY CASE r.level WHEN 'all' THEN 0 WHEN 'region' THEN 1 WHEN 'city' THEN 2 ELSE 3 END,
    r.region, unit_id
