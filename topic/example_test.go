package topic_test

import (
	"fmt"
	"slices"

	"github.com/mqttpersist/mqttpersist/topic"
)

func ExampleMatch() {
	fmt.Println(topic.Match("sensor/+/temp", "sensor/1/temp"))
	fmt.Println(topic.Match("sensor/#", "sensor"))            // '#' matches the parent level
	fmt.Println(topic.Match("#", "$SYS/uptime"))              // wildcards do not match '$' topics at the first level
	fmt.Println(topic.Match("$share/g/sensor/#", "sensor/1")) // a shared filter matches as its inner filter
	// Output:
	// true
	// true
	// false
	// true
}

func ExampleValidateFilter() {
	fmt.Println(topic.ValidateFilter("a/b#/c"))
	fmt.Println(topic.ValidateFilter("$share/workers/jobs/#"))
	// Output:
	// topic: invalid filter "a/b#/c": level 1 "b#": '#' must be alone in its level [MQTT-4.7.1-2]
	// <nil>
}

func ExampleOverlap() {
	fmt.Println(topic.Overlap("#", "queue/#"))
	fmt.Println(topic.Overlap("sensor/+/temp", "sensor/1/#"))
	fmt.Println(topic.Overlap("a/b", "a/c"))
	fmt.Println(topic.Subsumes("sensor/#", "sensor/+/temp"))
	// Output:
	// true
	// true
	// false
	// true
}

func ExamplePrefix() {
	for _, f := range []string{"sensor/+/temp", "a/b/#", "#", "a/b"} {
		fmt.Printf("%q\n", topic.Prefix(f))
	}
	// Output:
	// "sensor"
	// "a/b"
	// ""
	// "a/b"
}

func ExampleIndex() {
	ix := topic.NewIndex[string]()
	for f, rule := range map[string]string{
		"sensor/+/temp":    "temperatures",
		"sensor/#":         "all sensors",
		"$share/g/alarm/#": "alarms",
		"#":                "everything",
	} {
		if err := ix.Add(f, rule); err != nil {
			fmt.Println(err)
		}
	}
	rules := ix.Match("sensor/7/temp")
	slices.Sort(rules) // the order of matches is not specified
	fmt.Println(rules)
	fmt.Println(ix.Match("$SYS/uptime"))

	var lines []string
	ix.Each("alarm/door", func(filter, rule string) bool {
		lines = append(lines, filter+" -> "+rule)
		return true // false stops the walk
	})
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Println(ix.Add("sensor/+x", "bad"))
	// Output:
	// [all sensors everything temperatures]
	// []
	// # -> everything
	// $share/g/alarm/# -> alarms
	// topic: invalid filter "sensor/+x": level 1 "+x": '+' must be alone in its level [MQTT-4.7.1-3]
}
