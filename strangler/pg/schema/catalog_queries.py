"""The pg_catalog queries behind :mod:`strangler.pg.schema.catalog`, kept apart so each reads whole.

Each runs with ``search_path`` set to the source schema (see the catalog module).
"""

__all__ = [
    "COLLATIONS",
    "COLUMNS",
    "COLUMN_GRANTS",
    "CONSTRAINTS",
    "GRANTS",
    "INDEXES",
    "NOT_NULLS",
    "POLICIES",
    "SEQUENCES",
    "TABLES",
    "TRIGGERS",
    "TRIGGER_FUNCTIONS",
    "TYPE",
    "TYPE_FUNCTIONS",
]

TABLES = """
SELECT c.oid, c.relname, c.relkind, c.relpersistence = 'u' AS unlogged, c.relispartition,
       c.relreplident, obj_description(c.oid, 'pg_class') AS comment,
       coalesce(c.reloptions, '{}') AS options,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
       (SELECT p.relname FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
         WHERE h.inhrelid = c.oid AND c.relispartition) AS parent,
       (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = c.oid AND i.indisreplident) AS replica_index,
       greatest(c.reltuples, 0)::bigint AS estimated_rows,
       pg_table_size(c.oid) AS bytes,
       c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,
       -- table inheritance (INHERITS), not partitioning: parents in order, and children
       ARRAY(SELECT p.relname::text FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
             WHERE h.inhrelid = c.oid AND NOT c.relispartition ORDER BY h.inhseqno) AS inherits,
       ARRAY(SELECT CASE WHEN kn.nspname = %(schema)s THEN k.relname::text
                         ELSE format('%%s.%%s', kn.nspname, k.relname) END FROM pg_inherits h
             JOIN pg_class k ON k.oid = h.inhrelid JOIN pg_namespace kn ON kn.oid = k.relnamespace
             WHERE h.inhparent = c.oid AND NOT k.relispartition ORDER BY 1) AS children,
       (SELECT format('%%s.%%s', pn.nspname, p.relname) FROM pg_inherits h
             JOIN pg_class p ON p.oid = h.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
             WHERE h.inhrelid = c.oid AND NOT c.relispartition
               AND pn.nspname <> %(schema)s LIMIT 1) AS foreign_parent
FROM pg_class c
WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)
  AND c.relkind IN ('r', 'p')
  AND c.oid = ANY(%(oids)s)
"""

COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod) AS type_sql,
       a.atttypid::int AS type_oid, a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS def,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS gen,
       a.attidentity::text AS identity, a.attgenerated::text AS generated,
       CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text
            END AS coll,
       col_description(a.attrelid, a.attnum) AS comment, NOT a.attislocal AS inherited
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

CONSTRAINTS = """
SELECT con.oid, con.conrelid, con.conname, con.contype::text AS kind,
       pg_get_constraintdef(con.oid) AS def, con.convalidated,
       (con.conparentid <> 0 OR NOT con.conislocal) AS inherited,
       obj_description(con.oid, 'pg_constraint') AS comment,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
             ORDER BY k.o) AS cols,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
             ORDER BY k.o) AS ref_cols,
       rn.nspname AS ref_schema, rc.relname AS ref_table,
       con.confmatchtype::text AS match, con.confupdtype::text AS on_update,
       con.confdeltype::text AS on_delete, con.condeferrable, con.condeferred,
       CASE WHEN con.contype IN ('p', 'u') AND con.conindid <> 0
            THEN pg_get_indexdef(con.conindid, 0, true) END AS index_def,
       (SELECT ic.relname FROM pg_class ic
         WHERE ic.oid = con.conindid AND con.contype IN ('p', 'u')) AS index_name
FROM pg_constraint con
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = ANY(%(oids)s) AND con.contype IN ('p', 'u', 'c', 'x', 'f')
ORDER BY con.conrelid, con.conname
"""

INDEXES = """
SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid, 0, true) AS def,
       quote_ident(ic.relname) AS qname,
       obj_description(i.indexrelid, 'pg_class') AS comment,
       EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) AS inherited
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(%(oids)s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                  AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
ORDER BY i.indrelid, ic.relname
"""

# Row-level security policies, with expressions deparsed under the source search_path.
POLICIES = """
SELECT p.polrelid, p.polname, p.polcmd::text AS cmd, p.polpermissive,
       ARRAY(SELECT coalesce(r.rolname, 'PUBLIC') FROM unnest(p.polroles) u(o)
             LEFT JOIN pg_roles r ON r.oid = u.o ORDER BY 1) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS qual,
       pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
FROM pg_policy p WHERE p.polrelid = ANY(%(oids)s)
ORDER BY p.polrelid, p.polname
"""

# PostgreSQL 18 names NOT NULL constraints (pg_constraint contype 'n'): one per column.
NOT_NULLS = """
SELECT con.conrelid, c.relname, a.attname, con.conname,
       (SELECT pc.conname FROM pg_inherits i
        JOIN pg_attribute pa ON pa.attrelid = i.inhparent AND pa.attname = a.attname
        JOIN pg_constraint pc ON pc.conrelid = i.inhparent AND pc.contype = 'n'
         AND pc.conkey[1] = pa.attnum
        WHERE i.inhrelid = con.conrelid ORDER BY i.inhseqno LIMIT 1) AS parent_name
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
WHERE con.contype = 'n' AND con.conrelid = ANY(%(oids)s)
"""

TRIGGERS = """
SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid, true) AS def, t.tgenabled::text AS enabled,
       p.proname, pn.nspname AS fschema
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE t.tgrelid = ANY(%(oids)s) AND NOT t.tgisinternal
  AND NOT EXISTS (SELECT 1 FROM pg_trigger pt WHERE pt.oid = t.tgparentid)
  -- strangler's own write gate and write guard are not the monolith's triggers
  AND NOT pn.nspname = ANY(%(own)s)
ORDER BY t.tgrelid, t.tgname
"""

TRIGGER_FUNCTIONS = """
SELECT p.proname, l.lanname, p.prosrc, p.prosecdef, p.provolatile::text AS volatility
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)
  AND p.proname = ANY(%(names)s)
  AND p.prorettype = 'trigger'::regtype AND p.pronargs = 0
ORDER BY p.proname
"""

GRANTS = """
SELECT c.oid, coalesce(r.rolname, 'PUBLIC') AS grantee, a.privilege_type, a.is_grantable
FROM pg_class c, aclexplode(c.relacl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = ANY(%(oids)s) AND a.grantee <> c.relowner
ORDER BY c.oid, grantee, a.privilege_type
"""

# Privileges on single columns (GRANT SELECT (a, b) ON t TO r), one row per column.
COLUMN_GRANTS = """
SELECT a.attrelid AS oid, a.attname, coalesce(r.rolname, 'PUBLIC') AS grantee,
       x.privilege_type, x.is_grantable
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
CROSS JOIN LATERAL aclexplode(a.attacl) x
LEFT JOIN pg_roles r ON r.oid = x.grantee
WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attacl IS NOT NULL AND x.grantee <> c.relowner
ORDER BY a.attrelid, grantee, x.privilege_type, x.is_grantable, a.attnum
"""

# Every sequence a moved column draws from in the source schema: owned by a moved table
# (serial, identity), or named by a moved table's default without being owned (shared ones
# too), or called by a carried trigger function (``%(called)s``, found in its body). With each,
# the moved columns whose defaults draw from it, so the copy can set it past their values.
SEQUENCES = """
WITH seqs AS (
    SELECT d.objid AS seq FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = ANY(%(oids)s) AND d.deptype IN ('a', 'i')
    UNION
    SELECT d.refobjid FROM pg_attrdef ad
    JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
         AND d.refclassid = 'pg_class'::regclass
    WHERE ad.adrelid = ANY(%(oids)s)
    UNION
    SELECT unnest(%(called)s::oid[])
)
SELECT sc.relname, format_type(s.seqtypid, NULL) AS type_sql,
       s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       o.owner_table, o.owner_column, coalesce(o.identity, false) AS identity,
       ARRAY(SELECT ARRAY[tc.relname::text, a.attname::text]
             FROM pg_attrdef ad
             JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = s.seqrelid
             JOIN pg_class tc ON tc.oid = ad.adrelid
             JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
             WHERE ad.adrelid = ANY(%(oids)s)
             ORDER BY tc.relname, a.attname) AS used_by
FROM seqs
JOIN pg_sequence s ON s.seqrelid = seqs.seq
JOIN pg_class sc ON sc.oid = s.seqrelid
LEFT JOIN LATERAL (
    SELECT tc.relname AS owner_table, a.attname AS owner_column, d.deptype = 'i' AS identity
    FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
      AND d.refobjid = ANY(%(oids)s)
    LIMIT 1
) o ON true
WHERE sc.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)
"""

TYPE = """
SELECT t.oid, t.typname, n.nspname, t.typtype::text AS kind, t.typelem, t.typbasetype,
       t.typarray,
       t.typrelid, t.typcategory::text AS category, t.typnotnull,
       format_type(t.typbasetype, t.typtypmod) AS base_sql,
       pg_get_expr(t.typdefaultbin, 0) AS def,
       CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation
            THEN t.typcollation::regcollation::text END AS coll,
       EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
               AND e.objid = t.oid AND e.deptype = 'e') AS from_extension,
       obj_description(t.oid, 'pg_type') AS comment,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
             ORDER BY e.enumsortorder) AS labels,
       ARRAY(SELECT ARRAY[c.conname::text, pg_get_constraintdef(c.oid), c.convalidated::text]
             FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c'
             ORDER BY c.conname) AS checks,
       ARRAY(SELECT ARRAY[a.attname::text, format_type(a.atttypid, a.atttypmod), a.atttypid::text]
             FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
             AND NOT a.attisdropped ORDER BY a.attnum) AS attrs,
       -- a range type: its subtype, and what it sets beyond the subtype's defaults
       rng.rngsubtype, format_type(rng.rngsubtype, NULL) AS subtype_sql,
       CASE WHEN rng.rngcollation <> 0 AND rng.rngcollation <> st.typcollation
            THEN rng.rngcollation::regcollation::text END AS range_coll,
       CASE WHEN NOT opc.opcdefault THEN
            CASE WHEN opc.opcnamespace = 'pg_catalog'::regnamespace THEN quote_ident(opc.opcname)
                 ELSE quote_ident(opn.nspname) || '.' || quote_ident(opc.opcname) END
            END AS opclass,
       opn.nspname AS opclass_schema,
       rng.rngcanonical::oid AS canonical,
       rng.rngsubdiff::oid AS subdiff_oid, rng.rngsubdiff::regproc::text AS subdiff,
       dp.proname AS subdiff_name, dn.nspname AS subdiff_schema,
       mt.oid AS multi_oid, mt.typname AS multirange, mt.typarray AS multi_array,
       -- a multirange type: the range it belongs to (which creates it)
       (SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = t.oid) AS multirange_of
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_range rng ON rng.rngtypid = t.oid
LEFT JOIN pg_type st ON st.oid = rng.rngsubtype
LEFT JOIN pg_opclass opc ON opc.oid = rng.rngsubopc
LEFT JOIN pg_namespace opn ON opn.oid = opc.opcnamespace
LEFT JOIN pg_proc dp ON dp.oid = rng.rngsubdiff
LEFT JOIN pg_namespace dn ON dn.oid = dp.pronamespace
LEFT JOIN pg_type mt ON mt.oid = rng.rngmultitypid
WHERE t.oid = ANY(%(oids)s)
"""

TYPE_FUNCTIONS = """
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result, l.lanname, p.prosrc,
       CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) END AS sql_body,
       p.provolatile::text AS volatility, p.proisstrict, p.proparallel::text AS parallel,
       p.prosecdef
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = ANY(%(oids)s)
ORDER BY p.proname
"""

# Every collation the moved tables and the carried types depend on: columns, indexes and
# partition keys (pg_class), CHECK constraints, defaults, triggers' WHEN, domains and ranges.
COLLATIONS = """
SELECT DISTINCT co.oid, co.collname, n.nspname, to_jsonb(co) AS def,
       obj_description(co.oid, 'pg_collation') AS comment,
       EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_collation'::regclass
               AND e.objid = co.oid AND e.deptype = 'e') AS from_extension
FROM pg_depend d
JOIN pg_collation co ON co.oid = d.refobjid
JOIN pg_namespace n ON n.oid = co.collnamespace
WHERE d.refclassid = 'pg_collation'::regclass AND n.nspname <> 'pg_catalog' AND (
    (d.classid = 'pg_class'::regclass AND (
        d.objid = ANY(%(oids)s)
        OR d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY(%(oids)s))
        OR d.objid IN (SELECT typrelid FROM pg_type WHERE oid = ANY(%(types)s))))
    OR (d.classid = 'pg_type'::regclass AND d.objid = ANY(%(types)s))
    OR (d.classid = 'pg_constraint'::regclass AND d.objid IN (
        SELECT oid FROM pg_constraint WHERE conrelid = ANY(%(oids)s) OR contypid = ANY(%(types)s)))
    OR (d.classid = 'pg_attrdef'::regclass AND d.objid IN (
        SELECT oid FROM pg_attrdef WHERE adrelid = ANY(%(oids)s)))
    OR (d.classid = 'pg_trigger'::regclass AND d.objid IN (
        SELECT oid FROM pg_trigger WHERE tgrelid = ANY(%(oids)s))))
ORDER BY co.collname
"""
