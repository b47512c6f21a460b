//go:build !race || !linux

package tcpconn

func raceAcquire() {}
