package mongostore

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// maxJSONDepth is the deepest nesting of a JSON payload kept as a
// document (MongoDB refuses documents nested more than 100 deep, and a
// payload document sits one level down).
const maxJSONDepth = 64

// errNotDocument says that a JSON payload is not one the server keeps as
// a document as it is.
var errNotDocument = errors.New("not a storable JSON document")

// jsonDocument returns a JSON object or array payload as the BSON value
// of the payload field (a bson.D or bson.A, numbers as int32, int64 or
// float64), and whether encodeJSON of that value gives p back exactly.
// It fails for anything else: other JSON values, invalid JSON, and JSON
// the server would refuse or change as a document — a key that is empty,
// starts with '$', holds '.' or U+0000, or repeats in its object; U+0000
// in a string; nesting deeper than maxJSONDepth; a number out of range or
// a negative zero (kept as 0).
func jsonDocument(p []byte) (v any, exact bool, err error) {
	first := bytes.TrimLeft(p, " \t\r\n")
	if len(first) == 0 || (first[0] != '{' && first[0] != '[') || !json.Valid(p) {
		return nil, false, errNotDocument
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	v, err = decodeValue(dec, 0)
	if err != nil {
		return nil, false, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, errNotDocument
	}
	_, raw, err := bson.MarshalValue(v)
	if err != nil {
		return nil, false, errNotDocument
	}
	t := bson.TypeEmbeddedDocument
	if _, ok := v.(bson.A); ok {
		t = bson.TypeArray
	}
	var b bytes.Buffer
	if err := encodeJSON(&b, bson.RawValue{Type: t, Value: raw}); err != nil {
		return nil, false, errNotDocument
	}
	return v, bytes.Equal(b.Bytes(), p), nil
}

// decodeValue decodes the next JSON value of dec, depth levels down.
func decodeValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, errNotDocument
	}
	switch x := tok.(type) {
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, errNotDocument
		}
		if x == '[' {
			arr := bson.A{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, errNotDocument
			}
			return arr, nil
		}
		doc := bson.D{}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, errNotDocument
			}
			k, _ := kt.(string)
			if k == "" || k[0] == '$' || strings.ContainsAny(k, ".\x00") || seen[k] {
				return nil, errNotDocument
			}
			seen[k] = true
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			doc = append(doc, bson.E{Key: k, Value: v})
		}
		if _, err := dec.Token(); err != nil { // '}'
			return nil, errNotDocument
		}
		return doc, nil
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			return nil, errNotDocument
		}
		return x, nil
	case json.Number:
		return number(string(x))
	case bool:
		return x, nil
	case nil:
		return nil, nil
	}
	return nil, errNotDocument
}

// number returns a JSON number as int32 or int64 when it is an integer
// that fits, else as a finite float64 other than -0.
func number(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if n >= math.MinInt32 && n <= math.MaxInt32 {
				return int32(n), nil
			}
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || (f == 0 && math.Signbit(f)) {
		return nil, errNotDocument
	}
	return f, nil
}

// encodeJSON writes v, a BSON value of a payload document, as compact
// JSON: the text the document stands for when no exact bytes are kept
// beside it. Publish keeps the bytes unless this gives them back.
func encodeJSON(w *bytes.Buffer, v bson.RawValue) error {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		elems, err := v.Document().Elements()
		if err != nil {
			return err
		}
		w.WriteByte('{')
		for i, e := range elems {
			if i > 0 {
				w.WriteByte(',')
			}
			writeJSONString(w, e.Key())
			w.WriteByte(':')
			if err := encodeJSON(w, e.Value()); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return err
		}
		w.WriteByte('[')
		for i, x := range vals {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := encodeJSON(w, x); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	case bson.TypeString:
		writeJSONString(w, v.StringValue())
	case bson.TypeInt32:
		w.WriteString(strconv.FormatInt(int64(v.Int32()), 10))
	case bson.TypeInt64:
		w.WriteString(strconv.FormatInt(v.Int64(), 10))
	case bson.TypeDouble:
		f := v.Double()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return errNotDocument
		}
		w.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	case bson.TypeBoolean:
		if v.Boolean() {
			w.WriteString("true")
		} else {
			w.WriteString("false")
		}
	case bson.TypeNull:
		w.WriteString("null")
	default:
		return errNotDocument
	}
	return nil
}

// writeJSONString writes s as a JSON string: '"' and '\' escaped, control
// characters as \n, \r, \t or \u00XX, everything else as it is.
func writeJSONString(w *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	w.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			w.WriteByte('\\')
			w.WriteByte(c)
		case c == '\n':
			w.WriteString(`\n`)
		case c == '\r':
			w.WriteString(`\r`)
		case c == '\t':
			w.WriteString(`\t`)
		case c < 0x20:
			w.WriteString(`\u00`)
			w.WriteByte(hex[c>>4])
			w.WriteByte(hex[c&0xf])
		case c < utf8.RuneSelf:
			w.WriteByte(c)
		default:
			_, n := utf8.DecodeRuneInString(s[i:])
			w.WriteString(s[i : i+n])
			i += n
			continue
		}
		i++
	}
	w.WriteByte('"')
}
