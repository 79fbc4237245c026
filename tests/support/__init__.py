"""Test support: real processes, ports, PKI, servers, daemons, recorders, assertions.

Everything a test needs to start or drive a real part lives here once; test modules
hold only tests. Nothing here is a mock: ``fakeserver`` scripts misbehaviour that no
real server produces on demand, and everything else starts the real thing.
"""
