package fr.vtdui.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.subscription.match.config.SubscriptionProcessorConfig;
import ca.uhn.fhir.jpa.subscription.submit.config.SubscriptionSubmitterConfig;
import java.time.Duration;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.data.jpa.JpaRepositoriesAutoConfiguration;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchClientAutoConfiguration;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchRestClientAutoConfiguration;
import org.springframework.boot.autoconfigure.flyway.FlywayAutoConfiguration;
import org.springframework.boot.autoconfigure.orm.jpa.HibernateJpaAutoConfiguration;
import org.springframework.boot.autoconfigure.quartz.QuartzAutoConfiguration;
import org.springframework.boot.autoconfigure.thymeleaf.ThymeleafAutoConfiguration;
import org.springframework.boot.autoconfigure.websocket.servlet.WebSocketServletAutoConfiguration;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Import;

/**
 * Entry point: a HAPI FHIR JPA server (FHIR R4; H2, or PostgreSQL) served under {@code /fhir}.
 *
 * <p>Only the HAPI modules vtdui needs are wired: JPA storage, REST-hook subscriptions, batch2 (needed by
 * reindexing after SearchParameter changes) and the validation chain used by {@code $validate}. Clinical
 * reasoning, MDM, IPS, the web test UI and Hibernate Search are left out so that the server starts quickly on a
 * small machine.
 */
@SpringBootApplication(
		exclude = {
			// HAPI builds its own EntityManagerFactory and Spring Data repositories (JpaConfig).
			HibernateJpaAutoConfiguration.class,
			JpaRepositoriesAutoConfiguration.class,
			// HAPI creates its schema with Hibernate and migrates with its own tool, not Flyway.
			FlywayAutoConfiguration.class,
			// HAPI runs its own Quartz scheduler; the web UI templates and Elasticsearch are not used.
			QuartzAutoConfiguration.class,
			ThymeleafAutoConfiguration.class,
			ElasticsearchClientAutoConfiguration.class,
			ElasticsearchRestClientAutoConfiguration.class,
			WebSocketServletAutoConfiguration.class,
		})
@Import({
	JpaR4Config.class,
	HapiJpaConfig.class,
	ThreadPoolFactoryConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	SubscriptionSubmitterConfig.class,
	SubscriptionProcessorConfig.class,
	SubscriptionChannelConfig.class,
})
public class Launcher {

	/**
	 * Starts the server.
	 *
	 * <p>{@code --vtdui.exit-with-pid=PID} makes the server shut down when process PID ends: a test session that
	 * is killed does not leave a JVM behind.
	 *
	 * @param args Spring Boot arguments, e.g. {@code --server.port=8081 --vtdui.data-dir=/var/lib/vtdui/hapi}, or
	 *     {@code --spring.datasource.url=jdbc:postgresql://127.0.0.1:5432/hapi --spring.datasource.username=hapi}
	 *     with the password in {@code SPRING_DATASOURCE_PASSWORD}
	 */
	public static void main(String[] args) {
		ConfigurableApplicationContext context = SpringApplication.run(Launcher.class, args);
		long owner = context.getEnvironment().getProperty("vtdui.exit-with-pid", Long.class, 0L);
		if (owner > 0) {
			watchOwner(context, owner);
		}
	}

	private static void watchOwner(ConfigurableApplicationContext context, long ownerPid) {
		Thread watchdog = new Thread(
				() -> {
					while (ProcessHandle.of(ownerPid).map(ProcessHandle::isAlive).orElse(false)) {
						try {
							Thread.sleep(Duration.ofSeconds(2).toMillis());
						} catch (InterruptedException e) {
							return;
						}
					}
					System.exit(SpringApplication.exit(context, () -> 0));
				},
				"vtdui-owner-watchdog");
		watchdog.setDaemon(true);
		watchdog.start();
	}
}
