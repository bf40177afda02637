package topic

import "strings"

// Match reports whether filter matches the topic name; an invalid filter or name matches nothing.
func Match(filter, name string) bool {
	if !check(name, false).ok() {
		return false
	}
	f, ok := body(filter)
	return ok && match(f, name)
}

// wild reports whether a valid filter starts with a wildcard level.
func wild(f string) bool { return f[0] == '+' || f[0] == '#' }

// match reports whether the valid, non-shared filter f matches the valid name n.
func match(f, n string) bool {
	if n[0] == '$' && wild(f) {
		return false // [MQTT-4.7.2-1]
	}
	for {
		fl, frest, fmore := next(f)
		if fl == "#" {
			return true
		}
		nl, nrest, nmore := next(n)
		if fl != "+" && fl != nl {
			return false
		}
		switch {
		case !fmore:
			return !nmore
		case !nmore:
			return frest == "#" // "a/#" matches its parent "a" [MQTT-4.7.1-2]
		}
		f, n = frest, nrest
	}
}

// Overlap reports whether some valid topic name is matched by both filters a and b; an invalid filter overlaps nothing.
func Overlap(a, b string) bool {
	a, ok := body(a)
	if !ok {
		return false
	}
	b, ok = body(b)
	if !ok {
		return false
	}
	if wild(a) && b[0] == '$' || wild(b) && a[0] == '$' {
		return false // [MQTT-4.7.2-1]
	}
	// A filter starting with an empty level ("/#") forces a common one-level name to be "", which is not a name.
	emptyFirst := a[0] == '/' || b[0] == '/'
	for k := 0; ; k++ {
		al, arest, amore := next(a)
		bl, brest, bmore := next(b)
		if al == "#" || bl == "#" {
			return true
		}
		if al != "+" && bl != "+" && al != bl {
			return false
		}
		switch {
		case !amore && !bmore:
			return true
		case !amore:
			return brest == "#" && (k > 0 || !emptyFirst) // the parent level of b's '#' [MQTT-4.7.1-2]
		case !bmore:
			return arest == "#" && (k > 0 || !emptyFirst)
		}
		a, b = arest, brest
	}
}

// Subsumes reports whether filter outer matches every valid topic name that filter inner matches; it is false if either is invalid.
func Subsumes(outer, inner string) bool {
	o, ok := body(outer)
	if !ok {
		return false
	}
	i, ok := body(inner)
	if !ok {
		return false
	}
	if wild(o) && i[0] == '$' {
		return false // [MQTT-4.7.2-1]
	}
	emptyFirst := i[0] == '/'
	for k := 0; ; k++ {
		ol, orest, omore := next(o)
		il, irest, imore := next(i)
		if ol == "#" {
			return true
		}
		if il == "#" {
			// inner matches names of k levels (its parent level) and more; "+/#" in outer only those of more than k.
			// They agree where the k-level name cannot exist: k == 0, or k == 1 after an empty first level (the name "").
			noParent := k == 0 || k == 1 && emptyFirst
			return noParent && o == "+/#"
		}
		if ol != "+" && ol != il {
			return false
		}
		switch {
		case !omore && !imore:
			return true
		case !imore:
			return orest == "#"
		case !omore:
			return false
		}
		o, i = orest, irest
	}
}

// Prefix returns the literal levels of filter before its first wildcard, joined by '/' ("" for an invalid filter); see the package doc for which names it bounds.
func Prefix(filter string) string {
	f, ok := body(filter)
	if !ok {
		return ""
	}
	switch i := strings.IndexAny(f, "+#"); i {
	case -1:
		return f
	case 0:
		return ""
	default:
		return f[:i-1]
	}
}

// HasWildcard reports whether a valid filter contains '+' or '#' (ignoring the share name of a shared filter), so that it matches more than one name; it is false for an invalid filter.
func HasWildcard(filter string) bool {
	f, ok := body(filter)
	return ok && strings.ContainsAny(f, "+#")
}
