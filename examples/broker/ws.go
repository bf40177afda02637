package main

import (
	"crypto/tls"
	"fmt"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// addWebsocket adds mochi's WebSocket listener on addr (-ws): MQTT over
// WebSocket (subprotocol "mqtt", binary frames, any path), wss with a TLS
// configuration. mochi's listener binds only once the server serves and
// then logs a failure rather than returning it, so addWebsocket binds addr
// once first to report a bad or busy address at start; for the same
// reason it needs a port (0 would pick one the broker cannot show).
func addWebsocket(server *mqtt.Server, addr string, tc *tls.Config) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-ws %s: %w", addr, err)
	}
	if port == "0" || port == "" {
		return fmt.Errorf("-ws %s: give a port (mochi's WebSocket listener cannot report one it picks)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-ws %s: %w", addr, err)
	}
	ln.Close()
	l := listeners.NewWebsocket(listeners.Config{Type: listeners.TypeWS, ID: "ws", Address: addr, TLSConfig: tc})
	if err := server.AddListener(l); err != nil {
		return fmt.Errorf("-ws %s: %w", addr, err)
	}
	return nil
}
