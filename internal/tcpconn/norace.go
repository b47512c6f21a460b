//go:build !race

package tcpconn

func raceAcquire() {}
