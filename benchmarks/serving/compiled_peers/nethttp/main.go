// A bare forwarder on Go's standard library (net/http and httputil.ReverseProxy),
// for the gateway benchmark: what a compiled data plane built on it costs before it
// does anything of the gateway's own.
//
//	nethttp LISTEN_HOST:PORT UPSTREAM_HOST:PORT
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: nethttp LISTEN_HOST:PORT UPSTREAM_HOST:PORT")
	}
	upstream := &url.URL{Scheme: "http", Host: os.Args[2]}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	log.Fatal(http.ListenAndServe(os.Args[1], proxy))
}
