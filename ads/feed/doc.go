// Package feed reads and writes the ads feed: the file an advertiser platform hands us with
// advertisers, campaigns, ads (creatives) and forums. It parses and validates; it never touches
// a database (ads/importer loads what it accepts).
//
// # Formats
//
// One entity per row, in CSV or in JSON Lines:
//
//   - CSV (RFC 4180): the first non-blank line is the header naming the columns, in any order.
//     Column names are matched case-insensitively after trimming spaces. Fields may be quoted
//     ("a ""quoted"" value", newlines allowed inside quotes); a quote inside an unquoted field
//     is an error. Every row must have as many fields as the header. Lines end in \n or \r\n.
//   - JSON Lines: one JSON object per line, with the same field names as the CSV columns
//     (matched exactly). A field that is null is the same as an absent one.
//
// Either may be gzip-compressed: gzip is recognised by its magic bytes (1f 8b), never by the name.
// The format is taken from the name (.csv, .jsonl or .ndjson, optionally followed by .gz);
// otherwise from the content: a first non-space byte '{' means JSON Lines, anything else CSV.
// A UTF-8 byte order mark at the start is skipped. Blank (whitespace-only) lines are skipped and
// are not rows. A line (or a CSV row spanning lines) longer than [MaxRowBytes] is a row error.
//
// # Fields
//
// Every row has:
//
//	kind         required: advertiser | campaign | ad | forum (case-insensitive)
//	external_id  required: ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$; for a forum it is the slug,
//	             ^[a-z0-9][a-z0-9_-]{0,63}$. Ids are unique per kind.
//
// advertiser:
//
//	name         required, 1..200 characters
//	email        optional, like name@example.com (no spaces, one @, a dot in the domain), ≤ 254
//	status       active | paused | archived (default active)
//
// campaign:
//
//	advertiser   required: the advertiser's external_id (in the database or in this feed)
//	name         required, 1..200 characters
//	status       active | paused | ended | archived (default active)
//	bid          required: cost per click, a decimal > 0 and ≤ 1000 ("0.35" = 350000 micros)
//	daily_budget required: a decimal > 0 and ≤ 1000000000
//	start_at     required: RFC 3339 (2026-03-01T09:00:00Z, any offset) or YYYY-MM-DD (midnight UTC)
//	end_at       optional, same forms, after start_at
//	forums       forum slugs          } targeting lists: empty = any. In CSV one string with
//	categories   category slugs       } entries separated by |; in JSON Lines an array of
//	countries    ISO 3166-1 alpha-2   } strings or the same | string. At most 500 entries,
//	placements   sidebar | inline | header | footer  } no empty entry. Countries are
//	             stored upper case, placements lower case.
//
// ad:
//
//	campaign     required: the campaign's external_id (in the database or in this feed)
//	title        required, 1..90 characters
//	body         optional, ≤ 300 characters (may span lines)
//	image_url    optional: an absolute http:// or https:// URL with a host, ≤ 2048 characters
//	click_url    required: an absolute http:// or https:// URL with a host, ≤ 2048 characters
//	status       active | paused | rejected | archived (default active)
//
// forum:
//
//	name         required, 1..200 characters
//	category     required: ^[a-z0-9][a-z0-9_-]{0,63}$
//
// Values are trimmed of surrounding white space. Text must be valid UTF-8 without NUL; names,
// titles and ids must not contain control characters (a body may contain tabs and newlines).
// URLs must not contain white space or control characters. Money is decimal text (or a JSON
// number) parsed exactly into integer micro-units: no floating point, at most 6 decimal places,
// an exponent (1e-1) is allowed. Times must fall in the years 1970..9999 and carry at most
// microsecond precision. In JSON Lines a text field may also be given as a JSON number (its
// literal text is used); true, false, objects and arrays (outside the lists) are errors.
//
// # Errors
//
// A row is validated completely. A row with any invalid field is refused, and [Reader.Next]
// reports one [Issue] per fault with the row's line (where it starts), kind, external id, the field
// and a reason an operator understands, e.g. `bid: must be a positive decimal, got "abc"`. The rest
// of the feed is still read. Row errors include: invalid UTF-8, text too long, bad URLs, missing
// required fields, a non-empty value in a field that does not belong to the row's kind, a CSV row
// with the wrong number of fields, a JSON line that is not one object or repeats a field, and a
// duplicate external id within the feed: the first valid occurrence wins and later ones are refused
// naming its line. References to advertisers and campaigns are checked by the importer, which
// knows the database.
//
// Unknown columns or fields are ignored, but never silently: each unknown name is reported once
// per feed as a notice (an [Issue] with Notice set, Field the name and the reason
// `unknown field "colour" ignored`), on the header's line for CSV and on the first line where it
// appears for JSON Lines. A notice does not refuse the row.
//
// A feed that cannot be read as a whole (a CSV without a header or without the kind or
// external_id column, a column named twice, a broken gzip stream, an I/O error) makes
// [Reader.Next] return an error instead of an [Issue].
package feed
