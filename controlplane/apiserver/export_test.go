package apiserver

// SetProtoListBuffer sets how much of a protobuf list is buffered, for
// tests of the two-pass path; the returned func restores it.
func SetProtoListBuffer(n int) func() {
	old := protoListBuffer
	protoListBuffer = n
	return func() { protoListBuffer = old }
}
