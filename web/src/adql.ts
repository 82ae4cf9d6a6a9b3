// ADQL 2.1 as CodeMirror's SQL language sees it, and the checks the page makes
// before it sends a query.

import { SQLDialect } from "@codemirror/lang-sql";

const KEYWORDS =
  "select top distinct all from where group by having order asc desc as join inner outer " +
  "left right full natural cross on using and or not is null like ilike between exists in " +
  "union intersect except with offset case when then else end cast true false";

/** ADQL's own functions (ADQL 2.1 sections 2.3 and 2.4), with their signatures. */
export const ADQL_FUNCTIONS: Array<[string, string]> = [
  ["ABS", "ABS(x)"], ["ACOS", "ACOS(x)"], ["ASIN", "ASIN(x)"], ["ATAN", "ATAN(x)"],
  ["ATAN2", "ATAN2(y, x)"], ["CEILING", "CEILING(x)"], ["COS", "COS(x)"], ["COT", "COT(x)"],
  ["DEGREES", "DEGREES(x)"], ["EXP", "EXP(x)"], ["FLOOR", "FLOOR(x)"], ["LOG", "LOG(x)"],
  ["LOG10", "LOG10(x)"], ["MOD", "MOD(x, y)"], ["PI", "PI()"], ["POWER", "POWER(x, y)"],
  ["RADIANS", "RADIANS(x)"], ["RAND", "RAND([seed])"], ["ROUND", "ROUND(x[, n])"],
  ["SIN", "SIN(x)"], ["SQRT", "SQRT(x)"], ["TAN", "TAN(x)"], ["TRUNCATE", "TRUNCATE(x[, n])"],
  ["COUNT", "COUNT(*) or COUNT(x)"], ["SUM", "SUM(x)"], ["AVG", "AVG(x)"], ["MIN", "MIN(x)"],
  ["MAX", "MAX(x)"], ["LOWER", "LOWER(s)"], ["UPPER", "UPPER(s)"], ["COALESCE", "COALESCE(a, b, ...)"],
  ["CAST", "CAST(x AS type)"], ["IN_UNIT", "IN_UNIT(x, 'unit')"],
  ["POINT", "POINT('ICRS', ra, dec)"], ["CIRCLE", "CIRCLE('ICRS', ra, dec, radius)"],
  ["BOX", "BOX('ICRS', ra, dec, width, height)"], ["POLYGON", "POLYGON('ICRS', ra1, dec1, ra2, dec2, ...)"],
  ["CONTAINS", "CONTAINS(point, region) = 1"], ["INTERSECTS", "INTERSECTS(region, region) = 1"],
  ["DISTANCE", "DISTANCE(point, point) in degrees"], ["AREA", "AREA(region) in square degrees"],
  ["CENTROID", "CENTROID(region)"], ["COORD1", "COORD1(point)"], ["COORD2", "COORD2(point)"],
  ["COORDSYS", "COORDSYS(geometry)"],
];

const TYPES = "smallint integer bigint real double precision char varchar boolean timestamp " +
  "point circle polygon region";

export const ADQL = SQLDialect.define({
  keywords: KEYWORDS,
  builtin: ADQL_FUNCTIONS.map(([name]) => name.toLowerCase()).join(" "),
  types: TYPES,
  doubleQuotedStrings: false,
  identifierQuotes: "\"",
  caseInsensitiveIdentifiers: true,
  operatorChars: "*+-/<>=!|",
});

/** The query text with comments and string literals blanked (same length, so
 *  positions still match), for the checks below. */
export function codeOnly(query: string): string {
  return query
    .replace(/--[^\n]*/g, (m) => " ".repeat(m.length))
    .replace(/'(?:[^']|'')*'?/g, (m) => " ".repeat(m.length))
    .replace(/"(?:[^"]|"")*"?/g, (m) => "x".repeat(m.length));
}

/** Qualified table names the query reads (``schema.table`` after FROM, JOIN or a comma
 *  in a FROM list), lower case. */
export function referencedTables(query: string): string[] {
  const code = codeOnly(query);
  const found = new Set<string>();
  const re = /\b(?:from|join)\s+([A-Za-z_][\w]*\s*\.\s*[A-Za-z_][\w]*)((?:\s*(?:as\s+)?[A-Za-z_]\w*)?(?:\s*,\s*[A-Za-z_][\w]*\s*\.\s*[A-Za-z_][\w]*(?:\s*(?:as\s+)?[A-Za-z_]\w*)?)*)/gi;
  for (const m of code.matchAll(re)) {
    found.add(m[1].replace(/\s+/g, "").toLowerCase());
    for (const more of m[2].matchAll(/,\s*([A-Za-z_]\w*\s*\.\s*[A-Za-z_]\w*)/g)) {
      found.add(more[1].replace(/\s+/g, "").toLowerCase());
    }
  }
  return [...found];
}

/** Whether the query limits its rows itself: TOP or WHERE anywhere outside strings and
 *  comments (a coarse check: the warning it drives can be overridden). */
export function hasTopOrWhere(query: string): boolean {
  return /\b(top|where)\b/i.test(codeOnly(query));
}
