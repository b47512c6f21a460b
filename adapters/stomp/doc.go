// Package stomp is iotgw's STOMP 1.0/1.1/1.2 front end over TCP and
// WebSocket; frames are read and written with go-stomp's frame package.
package stomp

import (
	_ "github.com/go-stomp/stomp/v3/frame" // pinned v3.1.5
)
