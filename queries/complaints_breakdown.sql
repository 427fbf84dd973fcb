-- purpose: Complaints by category with the ones to minimise counted apart: repeat,
--   over-level (越级), regulator-transferred and justified complaints; the top
--   categories first.
-- formula: complaints = tickets of kind 'complaint' created in the range; share = the
--   category's complaints / all complaints of the region; repeat = level 'repeat';
--   over-level = level 'over_level'; justified = justified is true.
-- grain: one row per region x category, by complaints descending
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
-- param: top int 10 categories per region
WITH c AS (
    SELECT region, category, level, source, justified
    FROM tickets
    WHERE kind = 'complaint'
      AND created_at >= {{from:utc}}
      AND created_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
ranked AS (
    SELECT
        region,
        category,
        count(*) AS complaints,
        CAST(count(*) AS DOUBLE) / sum(count(*)) OVER (PARTITION BY region) AS share,
        count(*) FILTER (WHERE level = 'repeat') AS repeat_complaints,
        count(*) FILTER (WHERE level = 'over_level') AS over_level,
        count(*) FILTER (WHERE source = 'regulator_transferred') AS regulator_transferred,
        count(*) FILTER (WHERE justified) AS justified,
        row_number() OVER (PARTITION BY region ORDER BY count(*) DESC, category) AS rank
    FROM c
    GROUP BY region, category
),
result AS (
    SELECT * FROM ranked
    WHERE rank <= {{top}}
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_category.name_zh, ''), result.category) AS category_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN categories n_category ON n_category.category = result.category
ORDER BY result.region, result.rank
