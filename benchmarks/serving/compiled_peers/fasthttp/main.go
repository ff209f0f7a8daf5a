// A bare forwarder on valyala/fasthttp (a server and a HostClient reusing their
// buffers), for the gateway benchmark: what a compiled data plane built on it costs
// before it does anything of the gateway's own.
//
//	fasthttp LISTEN_HOST:PORT UPSTREAM_HOST:PORT
package main

import (
	"log"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: fasthttp LISTEN_HOST:PORT UPSTREAM_HOST:PORT")
	}
	client := &fasthttp.HostClient{Addr: os.Args[2], MaxConns: 256}
	forward := func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Header.Del("Connection") // hop-by-hop: not forwarded
		if err := client.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error("the upstream is unavailable", fasthttp.StatusBadGateway)
		}
		ctx.Response.Header.Del("Connection")
	}
	log.Fatal(fasthttp.ListenAndServe(os.Args[1], forward))
}
