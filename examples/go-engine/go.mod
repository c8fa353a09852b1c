module example.com/go-engine

go 1.26

require github.com/condensenet/condensenet v0.0.0

require (
	golang.org/x/sys v0.46.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// The project is not published as a module yet: build against a checkout
// of it (this one, two folders up).
replace github.com/condensenet/condensenet => ../..
