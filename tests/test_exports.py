import calibroute


def test_all_matches_the_public_names():
    public = {n for n in dir(calibroute) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(calibroute, n)).__name__ == "module"}
    assert set(calibroute.__all__) == public - modules - {"annotations"}
