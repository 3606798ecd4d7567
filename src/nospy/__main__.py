from nospy.cli import main

main()
