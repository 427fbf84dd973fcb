-- purpose: Display names for the codes the other queries return: organisation units
--   (headquarters, regions, cities, branches, contact centres), ticket categories,
--   hotline queues and staff, in Chinese and English; one lookup for reports and BI
--   tools (北京 for beijing, 账单争议 for billing_dispute).
-- formula: one row per kind and code from org_units, categories, queues and staff; a
--   category or queue with several versions takes its newest (valid_from); name_zh
--   falls back to the code, name_en to name_zh.
-- grain: one row per kind x code
-- param: kind text % which names (LIKE pattern: unit, category, queue, staff or %)
WITH named AS (
    SELECT 'unit' AS kind, unit_id AS code, name_zh, name_en FROM org_units
    UNION ALL
    SELECT 'category', category, name_zh, name_en FROM (
        SELECT category, name_zh, name_en,
               row_number() OVER (PARTITION BY category ORDER BY valid_from DESC NULLS LAST) AS newest
        FROM categories
    ) WHERE newest = 1
    UNION ALL
    SELECT 'queue', queue, name_zh, name_en FROM (
        SELECT queue, name_zh, name_en,
               row_number() OVER (PARTITION BY queue ORDER BY valid_from DESC NULLS LAST) AS newest
        FROM queues
    ) WHERE newest = 1
    UNION ALL
    SELECT 'staff', staff_id, name_zh, name_en FROM staff
)
SELECT
    kind,
    code,
    coalesce(nullif(name_zh, ''), code) AS name_zh,
    coalesce(nullif(name_en, ''), nullif(name_zh, ''), code) AS name_en
FROM named
WHERE kind LIKE {{kind}} AND code IS NOT NULL
ORDER BY kind, code
