from gatewayctl.main import app

app()
