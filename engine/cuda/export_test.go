package cuda

// UseStandIn is useStandIn for the external tests of this package.
var UseStandIn = useStandIn
