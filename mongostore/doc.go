// Package mongostore keeps an MQTT broker's state in MongoDB.
package mongostore
